#!/usr/bin/env python
"""GPU: `decode_attention`'s share of the bandwidth at one decode step's shape, for each number of spans a row's slots
are cut into (a development tool; the Qwen2.5-1.5B shape by default: 12 query heads, 2 KV heads, head size 128).

    python benchmarks/tools/tune_decode_attention.py --rows 128 --lengths 300 600 1064
    python benchmarks/tools/tune_decode_attention.py --rows 16 --lengths 600 1064     # a long-tailed batch's last rows
    python benchmarks/tools/tune_decode_attention.py --rows 128 --sweep                # launch settings, one span and two

Prints, per cache length, the time of `splits=1, 2, 4, 8, 16` and of the default (`attention_splits`), each as a share
of the copy bandwidth (K and V read once), and the largest difference from one span. Each time is a CUDA graph of 20
calls, replayed. With `--sweep`, the kernel's launch settings instead (`fd.ATTENTION_LAUNCH`: slots a block, warps,
stages), one span and two, each against the default's time at every length. On a CPU (`TRITON_INTERPRET=1`, small sizes) it checks the spans' agreement only.
"""
import argparse, time
import torch
import rlprims.fast_decode as fd
from kernel_timing import graph_seconds, patch_interpreter_for_numpy2

ap = argparse.ArgumentParser()
ap.add_argument("--rows", type=int, default=128); ap.add_argument("--H", type=int, default=12); ap.add_argument("--Hkv", type=int, default=2)
ap.add_argument("--D", type=int, default=128); ap.add_argument("--Lmax", type=int, default=1088)
ap.add_argument("--lengths", type=int, nargs="+", default=[300, 600, 1064]); ap.add_argument("--reps", type=int, default=200)
ap.add_argument("--sweep", action="store_true", help="time the kernel's launch settings (fd.ATTENTION_LAUNCH) instead of the number of spans")
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

if a.sweep:                                                  # every launch setting, one span and two, against today's default
    import itertools
    default = {k: dict(v) for k, v in fd.ATTENTION_LAUNCH.items()}
    cols = [torch.tensor([L - 1], device=dev) for L in a.lengths]
    refs = [fd.decode_attention(q, K, V, mask, c, D ** -0.5, splits=1).float() for c in cols]
    def row(splits, launch):
        fd.ATTENTION_LAUNCH.update({k: dict(v) for k, v in default.items()}); fd.ATTENTION_LAUNCH["one span" if splits == 1 else "spans"] = launch
        try:
            err = max((fd.decode_attention(q, K, V, mask, c, D ** -0.5, splits=splits).float() - r).abs().max().item() for c, r in zip(cols, refs))
            if err > 0.05: return f"max|diff| {err:.3g} from the default"
            return [timed(lambda c=c: fd.decode_attention(q, K, V, mask, c, D ** -0.5, splits=splits)) for c in cols]
        except Exception as e: return type(e).__name__   # e.g. out of shared memory
        finally: fd.ATTENTION_LAUNCH.update({k: dict(v) for k, v in default.items()})
    base = {s: row(s, default["one span" if s == 1 else "spans"]) for s in (1, 2)}
    nbytes = [2 * N * Hkv * L * D * 2 for L in a.lengths]
    results = []
    for splits, bl, warps, stages in itertools.product((1, 2), (16, 32, 64, 128), (2, 4, 8), (1, 2, 3, 4)):
        launch = dict(BLOCK_L=bl, num_warps=warps, num_stages=stages)
        t = row(splits, launch)
        if isinstance(t, str): print(f"splits={splits} {launch}: {t}", flush=True); continue
        results.append((sum(t) / sum(base[1]), splits, launch, t))
    results.sort(key=lambda r: r[0])
    print("lengths " + " ".join(map(str, a.lengths)) + "; default one span: " + " ".join(f"{t * 1e6:.1f} us ({b / t / bw:.0%})" for t, b in zip(base[1], nbytes))
          + "; default two spans: " + " ".join(f"{t * 1e6:.1f} us" for t in base[2]))
    for r, splits, launch, t in results[:12]:
        print(f"{r:6.3f}x the default's time  splits={splits} {launch}: " + " ".join(f"{x * 1e6:.1f} us ({b / x / bw:.0%})" for x, b in zip(t, nbytes)), flush=True)
    raise SystemExit(0)

for L in a.lengths:
    col = torch.tensor([L - 1], device=dev)
    nbytes = 2 * N * Hkv * L * D * 2
    one = fd.decode_attention(q, K, V, mask, col, D ** -0.5, splits=1).float()
    for splits in (1, 2, 4, 8, 16, None):
        run = lambda: fd.decode_attention(q, K, V, mask, col, D ** -0.5, splits=splits)
        err = (run().float() - one).abs().max().item()
        t = timed(run)
        print(f"L={L:5d} splits={str(splits or 'default'):>7}: {t * 1e6:7.1f} us  {nbytes / t / bw:6.1%} of copy bandwidth  max|diff| {err:.3g}")
