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

With `--carry K [K ...]` (and `--roofline`) it bounds partial rollouts the same way: every step brings `rows` fresh rows
(a new draw each step), and stops as soon as its queue is empty and at most K rows are still live; those rows carry
their tokens into the next step, whose prompt pass runs their prompt and partial completion again (at
`--prefill-tflops`) before they go on, first in the queue. Steady state over `--steps` steps, the first 5 left out.

    python benchmarks/tools/refill_estimate.py --roofline qwen2.5-1.5b --rows 512 1024 --carry 0 16 32 64 128
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

def carry_schedule(fresh, carried, slots: int, carry_at: int, wbytes: float, kv_per_tok: float, prompt_len: float):
    """One step of partial rollouts at the memory roofline: `carried` `(remaining, done)` rows go first, then `fresh`
    lengths, `slots` at a time; the step ends once the queue is empty and at most `carry_at` rows are live. A row's
    next token on starting (or resuming) comes from its prompt pass; each decode step reads the weights and every live
    row's prompt and tokens so far (`bench_grpo.schedule_bytes`'s model, which this equals without carried rows and
    with `carry_at=0`). Returns `(bytes read, tokens made, rows carried out as (remaining, done))`."""
    queue = list(carried) + [(int(L), 0) for L in fresh]
    live, total, tokens = [], 0.0, 0                         # live: [remaining, done] of the decoding rows
    while True:
        while queue and len(live) < slots:
            r, d = queue.pop(0)
            tokens += 1                                     # its prompt pass gives the next token
            if r > 1: live.append([r - 1, d + 1])
        if not live: return total, tokens, []
        if not queue and len(live) <= carry_at: return total, tokens, [tuple(x) for x in live]
        total += wbytes + kv_per_tok * sum(prompt_len + d for _, d in live)
        tokens += len(live)
        for x in live: x[0] -= 1; x[1] += 1
        live = [x for x in live if x[0] > 0]

def carry_bounds(a, model):
    "Print the steady-state ratio of partial rollouts (`carry_schedule`) against equal lengths through the same slots, for each of `a.carry`."
    from bench_grpo import decode_bytes, schedule_bytes
    wbytes, kv_per_tok, nparams, *_ = decode_bytes(model)
    bw, flops = a.bandwidth * 1e9, a.prefill_tflops * 1e12
    for n in a.rows:
        draws = [[int(x) for x in row_lengths(1000 + s, n, a.T, "longtail")] for s in range(a.steps)]
        mean = round(sum(map(sum, draws)) / (n * a.steps))
        equal = schedule_bytes([mean] * n, a.slots, wbytes, kv_per_tok, a.prompt_len) / bw / (n * mean)   # seconds a token
        L = np.array(draws, dtype=float).ravel()            # every step full, no tail: long rows' tokens still attend more positions
        per_token = lambda positions: wbytes + a.slots * kv_per_tok * positions
        floor = per_token(a.prompt_len + (L * (L - 1) / 2).sum() / L.sum()) / per_token(a.prompt_len + (mean - 1) / 2)
        print(f"{n:5d} rows a step through {a.slots} slots: with every slot always busy, a long-tailed token would still cost {floor:.2f}x "
              "(its tokens attend more positions)")
        for k in a.carry:
            carried, sec, tok, again, pre = [], 0.0, 0, 0, 0.0
            for s, fresh in enumerate(draws):
                prefill = sum(a.prompt_len + d for _, d in carried) * 2 * nparams / flops   # carried rows' prompt pass, again
                b, t, carried_out = carry_schedule(fresh, carried, a.slots, k, wbytes, kv_per_tok, a.prompt_len)
                if s >= 5: sec += b / bw + prefill; tok += t; again += len(carried); pre += prefill
                carried = carried_out
            print(f"{n:5d} rows a step through {a.slots} slots, carrying at <= {k:3d} live rows: a token costs {sec / tok / equal:.2f}x "
                  f"an equal-length one (rows carried a step {again / (a.steps - 5):.0f}; their prompt passes again {pre / sec:.0%} of the time)")

def roofline_bounds(a):
    "Print `longtail_floor_ratio` through `a.slots` places and all at once, for each of `a.rows`, on the shape's weights (no memory allocated)."
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from bench_grpo import shape_dir, longtail_floor_ratio
    with torch.device("meta"): model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(shape_dir(a.roofline)), dtype=torch.bfloat16)
    if a.carry:
        print(f"{a.roofline}, bf16, prompts of {a.prompt_len:g} tokens, budget {a.T}, {a.bandwidth:g} GB/s, prompt passes at {a.prefill_tflops:g} TFLOP/s: partial rollouts at the memory roofline")
        return carry_bounds(a, model)
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
    ap.add_argument("--carry", type=int, nargs="+", help="with --roofline: partial rollouts, a step ending at this many live rows (see the module's note)")
    ap.add_argument("--steps", type=int, default=25, help="with --carry: steps simulated")
    ap.add_argument("--bandwidth", type=float, default=4240.0, help="with --carry: GB/s (an H200's measured copy bandwidth)")
    ap.add_argument("--prefill-tflops", type=float, default=400.0, help="with --carry: the prompt pass's TFLOP/s")
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
