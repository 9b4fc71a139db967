#!/usr/bin/env python
"""An estimate, not a measurement: what a long-tailed token would cost against an equal-length one if the decoder
refilled freed slots from a queue of waiting rows (continuous batching), from a measured cost of one decode step at
each number of live rows (`decode_step_vs_rows.py`).

Each step costs `step_ms(live rows)` (interpolated); a row that ends frees its slot for the next waiting row at the next
step (its prompt pass is not counted). Equal lengths: every row the mean length, slots always full. Row lengths are the
benchmark's long-tailed draw (log-normal, median a quarter of the budget, 10% at the cap).

    python benchmarks/tools/refill_estimate.py --curve 128:2.329 64:2.082 32:1.953 16:1.904 8:1.868 4:1.804 --rows 128 256 512 1024

With `--check-every K` it follows `generate_batch_fast`'s loop instead: the host looks every K steps; a done row keeps
costing its place until a look refills it (only when at least `--min-free` places are free, or the whole queue fits),
or until compaction drops it once the queue is empty (live rows fitting in half the batch, rounded to a power of 2);
each refill costs `--refill-ms` (its prompt pass and host syncs). Equal lengths go through the same loop.

    python benchmarks/tools/refill_estimate.py --curve ... --rows 512 --one-draw --check-every 16 --refill-ms 28 --min-free 1 8 16

With `--roofline SHAPE` (no `--curve`) it prints the bound instead: the same ratio for a decoder at the memory roofline,
each step reading the shape's bf16 weights and its live rows' caches (`bench_grpo.longtail_floor_ratio`), through
`--slots` places and all at once, on `bench_grpo.py`'s draw (`--one-draw` implied).

    python benchmarks/tools/refill_estimate.py --roofline qwen2.5-1.5b --rows 512 1024 2048 4096
"""
import argparse, heapq, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_grpo import row_lengths

def refill_ms(lengths, slots: int, step_ms) -> float:
    "Decode time of rows of `lengths` with `slots` rows at once, each freed slot taken by the next waiting row; a step costs `step_ms(live rows)`."
    queue, ends, t, total = list(lengths), [], 0, 0.0
    while queue and len(ends) < slots: heapq.heappush(ends, queue.pop(0))              # rows running: the step they end at
    while ends:
        total += step_ms(len(ends)); t += 1
        while ends and ends[0] <= t:
            heapq.heappop(ends)
            if queue: heapq.heappush(ends, t + queue.pop(0))
    return total

def loop_ms(lengths, slots: int, step_ms, check_every: int, refill_ms: float = 0.0, min_free: int = 1) -> tuple[float, int, int]:
    "`(ms, decode steps, refills)` of `generate_batch_fast`'s refilling loop over rows of `lengths` (see the module's note)."
    pow2 = lambda n: 1 << (max(n, 1) - 1).bit_length()
    queue, left = list(lengths[slots:]), [l - 1 for l in lengths[:slots]]   # decode steps a row still needs (its first token came from its prompt pass)
    n, t, total, refills = len(left), 0, 0.0, 0
    while True:
        t += 1; total += step_ms(n)                               # done rows still in the batch cost their place
        left = [x - 1 for x in left]
        if t % check_every: continue
        free = [i for i, x in enumerate(left) if x <= 0]
        if queue and free and len(free) >= min(min_free, len(queue)):
            refills += 1; total += refill_ms
            for i in free[:len(queue)]: left[i] = queue.pop(0) - 1
        live = [x for x in left if x > 0]
        if not live and not queue: return total, t, refills
        if not queue and pow2(len(live)) <= n // 2: n = pow2(len(live)); left = live + [0] * (n - len(live))

def roofline_bounds(a):
    "Print `longtail_floor_ratio` through `a.slots` places and all at once, for each of `a.rows`, on the shape's weights (no memory allocated)."
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from bench_grpo import shape_dir, longtail_floor_ratio
    with torch.device("meta"): model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(shape_dir(a.roofline)), dtype=torch.bfloat16)
    print(f"{a.roofline}, bf16, prompts of {a.prompt_len:g} tokens, budget {a.T}: a long-tailed token against an equal-length one at the memory roofline")
    for n in a.rows:
        L = row_lengths(0, n, a.T, "longtail")
        print(f"{n:5d} rows, mean length {L.float().mean():.0f}: through {a.slots} slots {longtail_floor_ratio(model, L, a.prompt_len, a.slots):.2f}x, "
              f"all at once {longtail_floor_ratio(model, L, a.prompt_len):.2f}x")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curve", nargs="+", help="rows:ms pairs, a decode step's time at that many live rows")
    ap.add_argument("--roofline", metavar="SHAPE", help="print the memory-roofline bound for this bench_grpo.py shape instead")
    ap.add_argument("--prompt-len", type=float, default=46.0, help="with --roofline: prompt tokens a row (the benchmark's mean)")
    ap.add_argument("--slots", type=int, default=128); ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--rows", type=int, nargs="+", default=[128, 256, 512, 1024])
    ap.add_argument("--one-draw", action="store_true", help="the lengths of bench_grpo.py --slots: one draw of all rows (default: one draw per `slots` rows)")
    ap.add_argument("--check-every", type=int, default=0, help="follow generate_batch_fast's loop, the host looking every K steps (0: ideal refills)")
    ap.add_argument("--refill-ms", type=float, default=0.0, help="with --check-every: the cost of one refill")
    ap.add_argument("--min-free", type=int, nargs="+", default=[1], help="with --check-every: a refill waits for this many free places")
    a = ap.parse_args()
    if a.roofline: return roofline_bounds(a)
    if not a.curve: ap.error("--curve is needed (or --roofline SHAPE)")
    pts = sorted((int(r), float(ms)) for r, ms in (x.split(":") for x in a.curve))
    step_ms = lambda n: float(np.interp(n, [p[0] for p in pts], [p[1] for p in pts])) if n > 0 else 0.0
    print(f"slots {a.slots}, budget {a.T}; step cost (ms) at " + ", ".join(f"{r} rows {ms}" for r, ms in pts))
    for n in a.rows:
        draws = [row_lengths(0, n, a.T, "longtail").numpy()] if a.one_draw else [row_lengths(s, a.slots, a.T, "longtail").numpy() for s in range(-(-n // a.slots))]
        L = [int(x) for x in np.concatenate(draws)[:n]]
        mean = round(sum(L) / n)
        if a.check_every:
            eq, eq_steps, _ = loop_ms([mean] * n, a.slots, step_ms, a.check_every, a.refill_ms)
            for m in a.min_free:
                ms, steps, refills = loop_ms(L, a.slots, step_ms, a.check_every, a.refill_ms, m)
                print(f"{n:5d} rows, mean length {sum(L) / n:.0f}, a refill at >= {m} free places: {ms / 1e3:.3f} s, {steps} steps, {refills} refills; "
                      f"equal lengths {eq / 1e3:.3f} s, {eq_steps} steps: a long-tailed token costs {(ms / sum(L)) / (eq / (mean * n)):.2f}x")
            continue
        tail = refill_ms(L, a.slots, step_ms)
        equal = refill_ms([mean] * n, a.slots, step_ms)
        print(f"{n:5d} rows, mean length {sum(L) / n:.0f}: refilled {tail / 1e3:.3f} s, equal lengths {equal / 1e3:.3f} s: "
              f"a long-tailed token costs {(tail / sum(L)) / (equal / (mean * n)):.2f}x an equal-length one")

if __name__ == "__main__": main()
