#!/usr/bin/env python
"""An estimate, not a measurement: what a long-tailed token would cost against an equal-length one if the decoder
refilled freed slots from a queue of waiting rows (continuous batching), from a measured cost of one decode step at
each number of live rows (`decode_step_vs_rows.py`).

Each step costs `step_ms(live rows)` (interpolated); a row that ends frees its slot for the next waiting row at the next
step (its prompt pass is not counted). Equal lengths: every row the mean length, slots always full. Row lengths are the
benchmark's long-tailed draw (log-normal, median a quarter of the budget, 10% at the cap).

    python benchmarks/tools/refill_estimate.py --curve 128:2.329 64:2.082 32:1.953 16:1.904 8:1.868 4:1.804 --rows 128 256 512 1024
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

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curve", nargs="+", required=True, help="rows:ms pairs, a decode step's time at that many live rows")
    ap.add_argument("--slots", type=int, default=128); ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--rows", type=int, nargs="+", default=[128, 256, 512, 1024])
    a = ap.parse_args()
    pts = sorted((int(r), float(ms)) for r, ms in (x.split(":") for x in a.curve))
    step_ms = lambda n: float(np.interp(n, [p[0] for p in pts], [p[1] for p in pts])) if n > 0 else 0.0
    print(f"slots {a.slots}, budget {a.T}; step cost (ms) at " + ", ".join(f"{r} rows {ms}" for r, ms in pts))
    for n in a.rows:
        L = [int(x) for x in np.concatenate([row_lengths(s, a.slots, a.T, "longtail").numpy() for s in range(-(-n // a.slots))])[:n]]
        tail = refill_ms(L, a.slots, step_ms)
        mean = round(sum(L) / n)
        equal = refill_ms([mean] * n, a.slots, step_ms)
        print(f"{n:5d} rows, mean length {sum(L) / n:.0f}: refilled {tail / 1e3:.3f} s, equal lengths {equal / 1e3:.3f} s: "
              f"a long-tailed token costs {(tail / sum(L)) / (equal / (mean * n)):.2f}x an equal-length one")

if __name__ == "__main__": main()
