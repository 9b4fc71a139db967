#!/usr/bin/env python
"""GPU: issue 15's long-tail ratio in steady state, for a decode that keeps running between steps (the session that
`ContinuousRollouts` drives), against the same session at equal lengths and against `generate_batch_fast` decoding a
step's rows all at once at equal lengths.

Each step adds `--rows` rows with forced lengths (long-tailed: `bench_grpo.row_lengths`, a new draw each step; equal:
every row the mean of all draws), a step's worth more at the start (a step ahead, as `ContinuousRollouts(ahead=1)`
admits), and runs until `--rows` rows have finished; rows still decoding carry on into the next step. The first
`--warmup` steps are not timed. A token's cost is the timed steps' seconds over the tokens of the rows they returned.

    python benchmarks/tools/continuous_decode.py --shape qwen2.5-1.5b --rows 512 --slots 128 --T 1024
    python benchmarks/tools/continuous_decode.py --quick       # CPU: a tiny model, the plumbing only
"""
import argparse, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_grpo import row_lengths
from kernel_timing import random_shape_model, sum_prompts

ap = argparse.ArgumentParser()
ap.add_argument("--shape", default="qwen2.5-1.5b"); ap.add_argument("--rows", type=int, default=512); ap.add_argument("--slots", type=int, default=128)
ap.add_argument("--T", type=int, default=1024); ap.add_argument("--steps", type=int, default=6); ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--check-every", type=int, default=16); ap.add_argument("--G", type=int, default=8)
ap.add_argument("--quick", action="store_true", help="CPU, a tiny random model, a few short rows: the plumbing only")
a = ap.parse_args()
from rlprims.core import GenerationConfig
from rlprims.generation import load_tokenizer
from rlprims.fast_decode import generate_batch_fast, start_decode_session, session_add, session_run
if a.quick:
    from rlprims.training import tiny_test_model
    a.rows, a.slots, a.T, a.steps, a.warmup, a.check_every, a.G = 8, 4, 16, 2, 1, 2, 2
    model, tok, dev = tiny_test_model(), load_tokenizer(), "cpu"
else: (model, tok), dev = random_shape_model(a.shape), "cuda"
pids, pmask = sum_prompts(tok, a.rows, a.G)
gen = GenerationConfig(max_new_tokens=a.T, temperature=1.0, top_p=1.0, top_k=0)
draws = [row_lengths(s, a.rows, a.T, "longtail") for s in range(a.warmup + a.steps + 1)]
mean = round(float(torch.cat(draws).float().mean()))
sync = (lambda: torch.cuda.synchronize()) if dev == "cuda" else (lambda: None)

def session_cost(kind: str) -> tuple[float, int]:
    "Seconds a token over the timed steps, and the rows returned, for `kind` lengths through one session."
    S = start_decode_session(model, tok, gen, a.slots, pids.shape[1], check_every=a.check_every, cuda_graphs=None if dev == "cuda" else False)
    lengths = lambda s: draws[s] if kind == "longtail" else torch.full((a.rows,), mean)
    session_add(S, pids, pmask, forced_lengths=lengths(0))   # a step ahead
    seconds, tokens, rows = 0.0, 0, 0
    for s in range(a.warmup + a.steps):
        session_add(S, pids, pmask, forced_lengths=lengths(s + 1))
        sync(); t0 = time.perf_counter()
        out = session_run(model, S, until=lambda S: len(S.finished) >= a.rows)
        sync(); dt = time.perf_counter() - t0
        if s >= a.warmup: seconds += dt; tokens += sum(len(t) for _, t, _ in out); rows += len(out)
    return seconds / tokens, rows

def at_once_cost() -> float:
    "Seconds a token of one step's rows at equal lengths, all decoded at once by generate_batch_fast (after one warm-up call)."
    L = torch.full((a.rows,), mean)
    run = lambda: generate_batch_fast(model, tok, pids, pmask, gen, forced_lengths=L, **({} if dev == "cuda" else dict(static=True)))
    run(); sync(); t0 = time.perf_counter(); run(); sync()
    return (time.perf_counter() - t0) / (a.rows * mean)

lt, lt_rows = session_cost("longtail")
eq, eq_rows = session_cost("equal")
once = at_once_cost()
print(f"{'tiny (CPU)' if a.quick else a.shape}: {a.rows} rows a step (mean length {mean} of {a.T}), {a.slots} places, {a.steps} timed steps")
print(f"  session, long-tailed: {lt * 1e6:.2f} us a token ({lt_rows} rows returned); equal lengths: {eq * 1e6:.2f} us ({eq_rows} rows)")
print(f"  generate_batch_fast, all {a.rows} rows at once, equal lengths: {once * 1e6:.2f} us a token")
print(f"  a long-tailed token costs {lt / eq:.2f}x an equal-length one through the session, {lt / once:.2f}x one decoded all at once")
